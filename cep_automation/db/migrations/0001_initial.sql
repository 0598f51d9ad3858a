-- Domain tables of the CEP marketing site, and the bookkeeping tables of the job system.

CREATE TABLE campuses (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    advisor_phone text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE courses (
    id         bigserial PRIMARY KEY,
    title      text NOT NULL,
    offer_type text NOT NULL CHECK (offer_type IN ('telematico', 'ocupados', 'desempleados', 'privados')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A course run without a campus is taught online ("telemático").
CREATE TABLE course_runs (
    id         bigserial PRIMARY KEY,
    course_id  bigint NOT NULL REFERENCES courses(id),
    campus_id  bigint REFERENCES campuses(id),
    starts_on  date,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX course_runs_course_idx ON course_runs (course_id);

CREATE TABLE campaigns (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL,
    tracking_tag     text NOT NULL UNIQUE,
    meta_campaign_id text,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'ended')),
    budget           numeric(12, 2),
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE leads (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    external_id   text UNIQUE,
    name          text NOT NULL,
    email         text,
    phone         text,
    source        text NOT NULL DEFAULT 'web',
    course_run_id bigint REFERENCES course_runs(id),
    campaign_id   bigint REFERENCES campaigns(id),
    consent_at    timestamptz,
    consent_ip    inet,
    consent_text  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leads_created_at_idx ON leads (created_at);

CREATE TABLE uploads (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    filename    text NOT NULL,
    file_path   text NOT NULL,
    size_bytes  bigint,
    course_id   bigint REFERENCES courses(id),
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    model       text,
    result      jsonb,
    error       text,
    tokens_used integer,
    cost_usd    numeric(12, 6),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per job outcome (completed, failed, retried, skipped, dead).
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    action      text NOT NULL,
    actor       text,
    queue       text,
    message_id  text,
    entity_type text,
    entity_id   text,
    status      text NOT NULL,
    attempt     integer,
    duration_ms integer,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id);
CREATE INDEX audit_log_message_idx ON audit_log (message_id);
CREATE INDEX audit_log_created_idx ON audit_log (created_at);

-- Messages that will not be retried any more, kept for operators to retry or discard.
CREATE TABLE dead_letters (
    id                 bigserial PRIMARY KEY,
    queue              text NOT NULL,
    actor              text NOT NULL,
    message_id         text NOT NULL UNIQUE,
    payload            jsonb NOT NULL,
    options            jsonb NOT NULL DEFAULT '{}'::jsonb,
    error_type         text,
    error_message      text,
    traceback          text,
    attempts           integer NOT NULL DEFAULT 0,
    status             text NOT NULL DEFAULT 'dead' CHECK (status IN ('dead', 'retried', 'discarded')),
    retried_message_id text,
    discard_reason     text,
    enqueued_at        timestamptz,
    failed_at          timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_status_idx ON dead_letters (status, queue, failed_at);

-- Side effects already done for a job (a WhatsApp message, an email), so retries skip them.
CREATE TABLE effects (
    id          bigserial PRIMARY KEY,
    job_key     text NOT NULL,
    step        text NOT NULL,
    provider_id text,
    result      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_key, step)
);

-- Campaign metrics per campaign and period, written by campaign.sync.
CREATE TABLE campaign_metrics (
    campaign_id  bigint NOT NULL REFERENCES campaigns(id),
    period_start date NOT NULL,
    period_end   date NOT NULL,
    clicks       bigint NOT NULL DEFAULT 0,
    impressions  bigint NOT NULL DEFAULT 0,
    leads        bigint NOT NULL DEFAULT 0,
    spend        numeric(12, 2) NOT NULL DEFAULT 0,
    ctr          numeric(9, 4),
    cpl          numeric(12, 2),
    synced_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, period_start, period_end)
);

-- Pre-aggregated lead counts for dashboards. key_id 0 means "none": a telemático run for
-- the campus dimension, an unattributed lead for the campaign dimension, and the total row.
CREATE TABLE lead_rollups (
    granularity   text NOT NULL CHECK (granularity IN ('daily', 'weekly', 'monthly')),
    dimension     text NOT NULL CHECK (dimension IN ('total', 'course', 'campus', 'campaign')),
    period_start  date NOT NULL,
    key_id        bigint NOT NULL DEFAULT 0,
    leads         integer NOT NULL,
    consented     integer NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (granularity, dimension, period_start, key_id)
);
