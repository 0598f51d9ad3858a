-- Spend caps, issue 16 part 6.
--
-- spend: one row per paid call (an LLM completion, a paid API request), written as the provider answers, so
-- the day's totals survive any restart and `cep-automation spend` can show the last 30 days. `day` is the
-- calendar day in Europe/Madrid (the caps reset at Madrid's midnight); `kind` is 'llm' for language-model
-- calls (the LLM caps add those up) or the integration's kind; `item` is the model or the priced item.
-- Amounts are in euros (USD converted at CEP_USD_EUR_RATE when the call was made; cost_usd keeps the
-- original). No personal data: provider, item and the job's message id only.
CREATE TABLE spend (
    id          bigserial PRIMARY KEY,
    day         date NOT NULL,
    kind        text NOT NULL,
    provider    text NOT NULL,
    item        text NOT NULL,
    tokens      bigint NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    units       numeric(14, 4) NOT NULL DEFAULT 0 CHECK (units >= 0),
    cost_eur    numeric(14, 6) NOT NULL DEFAULT 0 CHECK (cost_eur >= 0),
    cost_usd    numeric(14, 6),
    job         text,
    message_id  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The caps' check (today's totals of a kind or a provider) and the 30-day report read by day.
CREATE INDEX spend_day_kind_idx ON spend (day, kind);
CREATE INDEX spend_day_provider_idx ON spend (day, provider);
