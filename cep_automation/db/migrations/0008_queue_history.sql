-- Queue history and the marketing statistics' reads, issue 16 parts 2 and 3.
--
-- queue_history: what `history.snapshot` measures every minute, per queue. A 'minute' row is one minute
-- [period_start, period_start + 1 min): the depth seen at the snapshot (waiting, delayed, dead letters not yet
-- retried or discarded), and what the audit log says ended in that minute (completed jobs, attempts, failed
-- attempts, jobs dead-lettered, first-attempt waits and their 50th/95th percentiles). Minute rows are kept
-- 30 days, then folded into one 'hour' row per queue and hour (depths: the highest snapshot; counts: sums;
-- p50: the mean of the minutes' p50 weighted by their waits; p95: the highest minute's), kept 400 days.
CREATE TABLE queue_history (
    resolution    text NOT NULL CHECK (resolution IN ('minute', 'hour')),
    period_start  timestamptz NOT NULL,
    queue         text NOT NULL,
    waiting       integer NOT NULL DEFAULT 0,
    delayed       integer NOT NULL DEFAULT 0,
    dead          integer NOT NULL DEFAULT 0,
    completed     integer NOT NULL DEFAULT 0,
    attempts      integer NOT NULL DEFAULT 0,
    failed        integer NOT NULL DEFAULT 0,
    dead_lettered integer NOT NULL DEFAULT 0,
    waits         integer NOT NULL DEFAULT 0,
    wait_p50_ms   integer,
    wait_p95_ms   integer,
    samples       integer NOT NULL DEFAULT 1,
    PRIMARY KEY (resolution, period_start, queue)
);

-- A job's wait from enqueue (or from when it was due, if delayed) to its first start, on its first attempt's
-- row: the snapshot takes a minute's percentiles from the rows of that minute (audit_log_created_idx).
ALTER TABLE audit_log ADD COLUMN wait_ms integer;

-- The statistics pages read campaign figures by the day their period ends (a range over every campaign; the
-- daily digest, 0009, declares the same index).
CREATE INDEX IF NOT EXISTS campaign_metrics_period_end_idx ON campaign_metrics (period_end, campaign_id);
