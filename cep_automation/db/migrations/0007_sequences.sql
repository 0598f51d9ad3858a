-- Sequences, issue 14.
--
-- leads.status: where the lead stands with the school ('new' until the CMS or an advisor says otherwise through
-- POST /v1/leads/{id}/status); an 'enrolled' or 'lost' lead leaves its sequences.
ALTER TABLE leads ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'new';
ALTER TABLE leads ADD COLUMN IF NOT EXISTS status_changed_at timestamptz;

-- sequence_enrollments: a lead in a sequence (once per lead, sequence and subject: the course run for
-- course_start). status: active, paused (by an operator), completed (every step done), exited (with exit_cause:
-- enrolled, lost, unsubscribed, consent_withdrawn, erased, cancelled by an operator, ...).
CREATE TABLE sequence_enrollments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id     uuid NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    sequence    text NOT NULL,
    subject     text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'completed', 'exited')),
    exit_cause  text,
    base_at     timestamptz NOT NULL,
    entered_at  timestamptz NOT NULL DEFAULT now(),
    paused_at   timestamptz,
    ended_at    timestamptz,
    UNIQUE (lead_id, sequence, subject)
);
CREATE INDEX sequence_enrollments_open_idx ON sequence_enrollments (lead_id) WHERE status IN ('active', 'paused');

-- sequence_steps: every step of an enrollment, written when the lead enters, with its due time (marketing
-- hours applied). A pending step is carried by one held job of scheduled_jobs, whose id is message_id (a new
-- one after a resume or a move to the next opening); the job runs the step only under that id. status:
-- pending, sent, skipped (detail says why), failed (after its last attempt), cancelled (detail: the cause).
CREATE TABLE sequence_steps (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    enrollment_id uuid NOT NULL REFERENCES sequence_enrollments(id) ON DELETE CASCADE,
    lead_id       uuid NOT NULL,
    position      integer NOT NULL,
    name          text NOT NULL,
    channel       text NOT NULL,
    due_at        timestamptz NOT NULL,
    message_id    text,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sent', 'skipped', 'failed', 'cancelled')),
    detail        text,
    attempts      integer NOT NULL DEFAULT 0,
    done_at       timestamptz,
    UNIQUE (enrollment_id, position)
);
CREATE INDEX sequence_steps_lead_idx ON sequence_steps (lead_id);
CREATE INDEX sequence_steps_pending_idx ON sequence_steps (due_at) WHERE status = 'pending';
