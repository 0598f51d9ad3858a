"""``cep-automation serve``: the HTTP service (health, metrics, job ingress, Meta webhook, dashboard)."""

from __future__ import annotations

import click

from cep_automation.settings import get_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--proxy-headers", is_flag=True, help="Trust X-Forwarded-* from 127.0.0.1 (behind a local proxy).")
def serve(host: str, port: int, proxy_headers: bool) -> None:
    """Serve /health, /ready, /metrics, /v1/jobs, /webhooks/meta/leads and the dashboard under /admin/."""
    from cep_automation.web import build_server, create_app

    settings = get_settings()
    if settings.effective_broker_url.startswith("stub://"):
        raise click.UsageError("BROKER_URL=stub:// would queue jobs no worker can see; unset it for `serve`")
    if not settings.cep_api_token:
        click.echo("warning: CEP_API_TOKEN is not set: every route but /health, /ready and the Meta webhook "
                   "answers 503 until it is", err=True)
    server = build_server(create_app(settings), host, port, proxy_headers=proxy_headers,
                          forwarded_allow_ips="127.0.0.1")
    server.run()
