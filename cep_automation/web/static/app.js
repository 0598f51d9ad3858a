// Refreshes the overview's queue counts every few seconds; the page works without it.
(function () {
  "use strict";
  var table = document.querySelector("[data-live-queues]");
  if (!table) return;
  var status = document.getElementById("live-status");
  var url = table.getAttribute("data-live-queues");

  function show(queues) {
    queues.forEach(function (q) {
      ["waiting", "active", "delayed", "dead"].forEach(function (state) {
        var cell = table.querySelector('[data-queue="' + q.queue + '"][data-state="' + state + '"]');
        if (cell) cell.textContent = String(q[state]);
      });
    });
  }

  function refresh() {
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        show(data.queues);
        if (status) status.textContent = "live · updated " + new Date().toLocaleTimeString();
      })
      .catch(function (error) {
        if (status) status.textContent = "refresh failed (" + error.message + ")";
      });
  }

  setInterval(refresh, 5000);
})();
