-- Flow control, issue 13 parts 7 and 8.
--
-- scheduled_jobs: jobs asked for later (run_at or delay beyond CEP_SCHEDULE_HOLD_AFTER_S, and debounced
-- jobs) are held here, not in Redis, so a Redis flush or failover cannot lose them; schedules.release moves
-- each to its queue when it is due (rows taken FOR UPDATE SKIP LOCKED: two releasers never take the same
-- row). message_id is the id the job will run under, known to the caller from the start (GET /v1/jobs/{id},
-- DELETE /v1/jobs/{id}). A debounce key has at most one row waiting: a new trigger moves its time and
-- replaces its payload.
CREATE TABLE scheduled_jobs (
    message_id   text PRIMARY KEY,
    actor        text NOT NULL,
    queue        text NOT NULL,
    payload      jsonb NOT NULL,
    options      jsonb NOT NULL DEFAULT '{}'::jsonb,
    run_at       timestamptz NOT NULL,
    debounce_key text,
    triggers     integer NOT NULL DEFAULT 1,
    status       text NOT NULL DEFAULT 'scheduled'
                 CHECK (status IN ('scheduled', 'released', 'cancelled', 'failed')),
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz
);
CREATE INDEX scheduled_jobs_due_idx ON scheduled_jobs (run_at) WHERE status = 'scheduled';
CREATE UNIQUE INDEX scheduled_jobs_debounce_idx ON scheduled_jobs (debounce_key) WHERE status = 'scheduled';

-- Who retried a dead letter (an operator, or dead_letters.auto_retry), and every retry of it, in order.
ALTER TABLE dead_letters ADD COLUMN retried_by text;
CREATE TABLE dead_letter_retries (
    id          bigserial PRIMARY KEY,
    letter_id   bigint NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    message_id  text NOT NULL,
    retried_by  text NOT NULL CHECK (retried_by IN ('operator', 'auto')),
    error_type  text,
    retried_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_retries_letter_idx ON dead_letter_retries (letter_id);
-- The auto-retry scan: dead letters still dead, by queue and age.
CREATE INDEX dead_letters_dead_failed_idx ON dead_letters (failed_at) WHERE status = 'dead';
