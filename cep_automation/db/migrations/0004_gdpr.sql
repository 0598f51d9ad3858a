-- Personal data under the GDPR/RGPD (docs/gdpr.md): erasures, consent history, anonymized leads.

-- An erased lead keeps what statistics need (course run, campaign, source, dates) and loses the rest.
ALTER TABLE leads ADD COLUMN IF NOT EXISTS erased_at timestamptz;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS consent_withdrawn_at timestamptz;

-- Every change of a lead's consent, with its date and where it came from (proof for the DPA).
CREATE TABLE consent_events (
    id          bigserial PRIMARY KEY,
    lead_id     uuid NOT NULL REFERENCES leads(id),
    state       text NOT NULL CHECK (state IN ('given', 'withdrawn')),
    source      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_events_lead_idx ON consent_events (lead_id, recorded_at);

-- One row per erasure request: what was done where and when, identifiers only as keyed hashes (HMAC-SHA256).
-- ``pending_subject`` holds the person's identifiers while the erasure runs and is emptied when it ends.
CREATE TABLE gdpr_erasures (
    id              uuid PRIMARY KEY,
    identifier_kind text NOT NULL CHECK (identifier_kind IN ('email', 'phone', 'lead_id')),
    identifier_hash text NOT NULL,
    subject_hashes  text[] NOT NULL DEFAULT '{}',
    lead_ids        uuid[] NOT NULL DEFAULT '{}',
    pending_subject jsonb,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'manual_action')),
    outcomes        jsonb NOT NULL DEFAULT '{}'::jsonb,
    requested_via   text NOT NULL,
    message_id      text,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
CREATE INDEX gdpr_erasures_identifier_idx ON gdpr_erasures (identifier_hash);

-- The key of those hashes when CEP_GDPR_HASH_KEY is not set: made once, random, the same for every process.
CREATE TABLE gdpr_hash_key (
    only_one boolean PRIMARY KEY DEFAULT true CHECK (only_one),
    secret   text NOT NULL
);
INSERT INTO gdpr_hash_key (secret) VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
