-- The daily digest, issue 14 part 4 (actors/digest.py, domain/digest.py).
--
-- campuses.advisor_email: where the campus's advisor gets the digest (NULL: no digest for that campus).
ALTER TABLE campuses ADD COLUMN IF NOT EXISTS advisor_email text;

-- Lead counts per campus and course, and per campus and campaign: lead_rollups keeps each dimension on its own,
-- and a course or a campaign spans campuses, so an advisor's figures cannot be read from it. Written by the same
-- rollup, in the same transaction (domain/campus_rollups.py). campus_id 0 is telemático; key_id 0 is "none"
-- (an unattributed lead in the campaign dimension). The primary key serves the digest's reads: one day of
-- every campus, or of one campus (granularity, period_start[, campus_id]).
CREATE TABLE lead_rollups_by_campus (
    granularity   text NOT NULL CHECK (granularity IN ('daily', 'weekly', 'monthly')),
    period_start  date NOT NULL,
    campus_id     bigint NOT NULL,
    dimension     text NOT NULL CHECK (dimension IN ('course', 'campaign')),
    key_id        bigint NOT NULL,
    leads         integer NOT NULL,
    consented     integer NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (granularity, period_start, campus_id, dimension, key_id)
);

-- Each campaign anomaly campaign.sync alerted (not those collapsed as duplicates of one just sent): until now
-- they went only to the alert sinks. No personal data: the campaign, the kind, the alert's text.
CREATE TABLE campaign_anomalies (
    id          bigserial PRIMARY KEY,
    campaign_id bigint NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    kind        text NOT NULL,
    severity    text NOT NULL,
    message     text NOT NULL,
    alerted_at  timestamptz NOT NULL DEFAULT now()
);
-- The digest reads one day's alerts: a range of alerted_at.
CREATE INDEX campaign_anomalies_alerted_idx ON campaign_anomalies (alerted_at);

-- The digest reads the figures campaign.sync stored for periods ending on one day (WHERE period_end = $1); the
-- primary key (campaign_id, period_start, period_end) cannot serve that.
CREATE INDEX IF NOT EXISTS campaign_metrics_period_end_idx ON campaign_metrics (period_end, campaign_id);
