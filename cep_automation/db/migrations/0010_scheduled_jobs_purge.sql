-- schedules.release purges finished held jobs (released, cancelled, failed) a week after their last change, on
-- every pass (records/scheduled_jobs.py: purge_finished). Without an index that DELETE read the whole table each
-- minute: with sequences, 150,000 held steps for 50,000 leads. Partial, so the rows still held cost it nothing.
CREATE INDEX IF NOT EXISTS scheduled_jobs_finished_idx ON scheduled_jobs (updated_at) WHERE status <> 'scheduled';
