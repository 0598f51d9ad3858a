-- campaign.sync counts each campaign's leads in a period (domain/campaigns.py, count_leads):
--   WHERE campaign_id = $1 AND created_at >= $2 AND created_at < $3
-- Without this index that is a scan of the whole leads table per campaign.
--
-- Plain CREATE INDEX, not CONCURRENTLY: the migrator applies each file inside a transaction, where
-- CONCURRENTLY is refused. It holds a SHARE lock on leads while it builds (inserts wait; reads do
-- not): a few seconds per million leads. IF NOT EXISTS: a database where an operator already built
-- it by hand (e.g. CONCURRENTLY, ahead of the deploy) migrates without error.
CREATE INDEX IF NOT EXISTS leads_campaign_created_idx ON leads (campaign_id, created_at);
