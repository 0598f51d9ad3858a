-- One row per backup artefact uploaded by backup.daily, with what was verified.
CREATE TABLE backups (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('database', 'media')),
    object_key  text NOT NULL UNIQUE,
    size_bytes  bigint NOT NULL,
    sha256      text NOT NULL,
    verified    boolean NOT NULL DEFAULT false,
    detail      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backups_created_idx ON backups (created_at);
