-- Hermes schema. Applied at every start; every statement is idempotent.
--
-- The seed's six entities: party, provider, channel, conversation, message,
-- attachment. A conversation is between exactly two parties, stored as the
-- ordered pair (party_a_id < party_b_id) so A→B and B→A share one row.
-- Messages carry the sender's external id, unique per channel: that is what
-- makes ingestion idempotent (the writer merges with ON CONFLICT DO NOTHING).
-- Dispatch state lives on the message row so that claiming work is one
-- indexed scan (FOR UPDATE SKIP LOCKED) and there is no second table to keep
-- in step.

CREATE TABLE IF NOT EXISTS party (
  id          bigint GENERATED ALWAYS AS IDENTITY,
  phone       text,
  email       text,
  -- One lookup key for both kinds (an E.164 number never contains '@', so
  -- the two can't collide): the writer joins and upserts on it.
  address     text GENERATED ALWAYS AS (coalesce(phone, email)) STORED,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT party_pkey PRIMARY KEY (id),
  CONSTRAINT party_phone_key UNIQUE (phone),
  CONSTRAINT party_email_key UNIQUE (email),
  CONSTRAINT party_address_key UNIQUE (address),
  CONSTRAINT party_one_address_check CHECK (num_nonnulls(phone, email) = 1),
  CONSTRAINT party_phone_e164_check CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
  CONSTRAINT party_email_lower_check CHECK (email = lower(email))
);

CREATE TABLE IF NOT EXISTS provider (
  id    smallint GENERATED ALWAYS AS IDENTITY,
  name  text NOT NULL,
  kind  text NOT NULL,
  CONSTRAINT provider_pkey PRIMARY KEY (id),
  CONSTRAINT provider_name_key UNIQUE (name)
);

CREATE TABLE IF NOT EXISTS channel (
  id           smallint GENERATED ALWAYS AS IDENTITY,
  name         text NOT NULL,
  type         text NOT NULL,
  provider_id  smallint NOT NULL,
  CONSTRAINT channel_pkey PRIMARY KEY (id),
  -- A channel name is unique per provider (the seed's rule); Hermes routes
  -- by name, and config reconciliation moves a channel between providers.
  CONSTRAINT channel_name_provider_key UNIQUE (name, provider_id),
  CONSTRAINT channel_provider_fkey FOREIGN KEY (provider_id) REFERENCES provider (id),
  CONSTRAINT channel_type_check CHECK (type IN ('sms', 'mms', 'email'))
);
CREATE UNIQUE INDEX IF NOT EXISTS channel_name_key ON channel (name);

CREATE TABLE IF NOT EXISTS conversation (
  id          bigint GENERATED ALWAYS AS IDENTITY,
  party_a_id  bigint NOT NULL,
  party_b_id  bigint NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT conversation_pkey PRIMARY KEY (id),
  CONSTRAINT conversation_pair_key UNIQUE (party_a_id, party_b_id),
  CONSTRAINT conversation_ordered_pair_check CHECK (party_a_id < party_b_id),
  CONSTRAINT conversation_party_a_fkey FOREIGN KEY (party_a_id) REFERENCES party (id),
  CONSTRAINT conversation_party_b_fkey FOREIGN KEY (party_b_id) REFERENCES party (id)
);
CREATE INDEX IF NOT EXISTS conversation_party_b_idx ON conversation (party_b_id);

-- message carries no foreign keys on purpose. Its references are correct by
-- construction: the writer takes every id from a lookup in the same
-- transaction or from ids it saw committed, and parties, conversations and
-- channels are never deleted. Four FK triggers per row (each an index probe
-- plus a row lock on the parent) halved the insert rate of the hot path
-- (measured: 500 cached rows 34-53 ms with them, 18-23 ms without).
-- test/durable-store.test.ts checks that no message references a missing row.
CREATE TABLE IF NOT EXISTS message (
  id                   bigint GENERATED ALWAYS AS IDENTITY,
  channel_id           smallint NOT NULL,
  external_id          text NOT NULL,
  conversation_id      bigint NOT NULL,
  sender_id            bigint NOT NULL,
  recipient_id         bigint NOT NULL,
  body                 text NOT NULL DEFAULT '',
  sent_at              timestamptz,
  received_at          timestamptz NOT NULL,
  committed_at         timestamptz NOT NULL DEFAULT now(),
  -- dispatch state (the dispatch stage owns these columns)
  dispatch_status      text NOT NULL DEFAULT 'pending',
  dispatch_attempts    integer NOT NULL DEFAULT 0,
  next_attempt_at      timestamptz NOT NULL DEFAULT now(),
  claimed_until        timestamptz,
  provider_message_id  text,
  last_error           text,
  dispatched_at        timestamptz,
  CONSTRAINT message_pkey PRIMARY KEY (id),
  CONSTRAINT message_channel_external_key UNIQUE (channel_id, external_id),
  CONSTRAINT message_dispatch_status_check
    CHECK (dispatch_status IN ('pending', 'sending', 'sent', 'failed')),
  CONSTRAINT message_external_id_check CHECK (length(external_id) BETWEEN 1 AND 255)
);
CREATE INDEX IF NOT EXISTS message_sent_at_idx ON message (sent_at);
CREATE INDEX IF NOT EXISTS message_conversation_idx ON message (conversation_id);
-- Only undelivered messages are in this index, so claiming due work stays
-- cheap however many delivered messages the table holds.
CREATE INDEX IF NOT EXISTS message_dispatch_due_idx ON message (next_attempt_at)
  WHERE dispatch_status IN ('pending', 'sending');

-- Dead letters are rare; this keeps counting them (the dispatch gauges) and
-- finding them (redispatch) cheap.
CREATE INDEX IF NOT EXISTS message_dispatch_failed_idx ON message (channel_id)
  WHERE dispatch_status = 'failed';

CREATE TABLE IF NOT EXISTS attachment (
  id          bigint GENERATED ALWAYS AS IDENTITY,
  message_id  bigint NOT NULL,
  position    smallint NOT NULL,
  url         text NOT NULL,
  CONSTRAINT attachment_pkey PRIMARY KEY (id),
  CONSTRAINT attachment_message_position_key UNIQUE (message_id, position),
  CONSTRAINT attachment_message_fkey FOREIGN KEY (message_id) REFERENCES message (id) ON DELETE CASCADE,
  CONSTRAINT attachment_url_check CHECK (url ~ '^(https?|s3)://[^[:space:]]+$' AND length(url) <= 2048)
);

-- Provider-native webhooks and delivery receipts (design.md). Everything
-- below upgrades an older database in place.

-- An email's subject (format sendgrid-parse); the delivery status reported
-- by the provider's receipts, which only moves forward (hermes_delivery_rank).
ALTER TABLE message ADD COLUMN IF NOT EXISTS subject text;
ALTER TABLE message ADD COLUMN IF NOT EXISTS delivery_status text
  CONSTRAINT message_delivery_status_check CHECK (delivery_status IN
    ('queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'undelivered', 'bounce', 'dropped', 'canceled'));
ALTER TABLE message ADD COLUMN IF NOT EXISTS delivery_updated_at timestamptz;
-- Room on every page of message for the new versions of its rows: a
-- receipt's delivery_status change (no indexed column) is then a HOT update,
-- written beside the old version with no index entry, instead of a new tuple
-- elsewhere and an entry in each of message's indexes. Set once, unless the
-- operator chose a fillfactor; pages already full keep their rows until rewritten.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_class c, unnest(c.reloptions) AS o(opt)
                  WHERE c.oid = 'message'::regclass AND o.opt LIKE 'fillfactor=%') THEN
    ALTER TABLE message SET (fillfactor = 50);
  END IF;
END
$$;
-- Receipts name a message by the id its provider gave it.
CREATE INDEX IF NOT EXISTS message_provider_message_id_idx ON message (provider_message_id)
  WHERE provider_message_id IS NOT NULL;

-- How far along a delivery status is: queued < sending < sent < delivered <
-- read, and the final ones (failed, undelivered, bounce, dropped, canceled)
-- above them all. A status is replaced only by a higher one, and a final one
-- never, so receipts arriving late, twice or out of order never regress it.
CREATE OR REPLACE FUNCTION hermes_delivery_rank (status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE status
    WHEN 'queued' THEN 1 WHEN 'sending' THEN 2 WHEN 'sent' THEN 3
    WHEN 'delivered' THEN 4 WHEN 'read' THEN 5
    WHEN 'failed' THEN 9 WHEN 'undelivered' THEN 9 WHEN 'bounce' THEN 9
    WHEN 'dropped' THEN 9 WHEN 'canceled' THEN 9
    ELSE 0 END
$$;

-- Files attached to an inbound email (format sendgrid-parse), bytes included.
CREATE TABLE IF NOT EXISTS attachment_file (
  id            bigint GENERATED ALWAYS AS IDENTITY,
  message_id    bigint NOT NULL,
  position      smallint NOT NULL,
  filename      text,
  content_type  text NOT NULL,
  size          integer NOT NULL,
  sha256        bytea NOT NULL,
  content       bytea NOT NULL,
  CONSTRAINT attachment_file_pkey PRIMARY KEY (id),
  CONSTRAINT attachment_file_message_position_key UNIQUE (message_id, position),
  CONSTRAINT attachment_file_message_fkey FOREIGN KEY (message_id) REFERENCES message (id) ON DELETE CASCADE,
  CONSTRAINT attachment_file_size_check CHECK (size = octet_length(content)),
  CONSTRAINT attachment_file_sha256_check CHECK (octet_length(sha256) = 32)
);

-- Every delivery receipt event, stored once per (provider, event_key):
-- Twilio's MessageSid:MessageStatus, SendGrid's sg_event_id. message_id is
-- NULL while the message it names is not known yet (a receipt can arrive
-- before the provider message id of Hermes' own send is stored); the writer
-- adopts such events as soon as the id appears (src/store/receipt-sql.ts).
CREATE TABLE IF NOT EXISTS delivery_event (
  id                   bigint GENERATED ALWAYS AS IDENTITY,
  provider_id          smallint NOT NULL,
  event_key            text NOT NULL,
  message_id           bigint,
  provider_message_id  text,
  event                text NOT NULL,
  status               text,
  error                text,
  occurred_at          timestamptz,
  received_at          timestamptz NOT NULL,
  payload              jsonb NOT NULL,
  CONSTRAINT delivery_event_pkey PRIMARY KEY (id),
  CONSTRAINT delivery_event_provider_key UNIQUE (provider_id, event_key),
  CONSTRAINT delivery_event_provider_fkey FOREIGN KEY (provider_id) REFERENCES provider (id),
  CONSTRAINT delivery_event_message_fkey FOREIGN KEY (message_id) REFERENCES message (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS delivery_event_message_idx ON delivery_event (message_id);
-- Only events still waiting for their message: the adoption sweep reads this.
CREATE INDEX IF NOT EXISTS delivery_event_waiting_idx ON delivery_event (provider_id, provider_message_id)
  WHERE message_id IS NULL AND provider_message_id IS NOT NULL;

-- A fleet on one database (src/fleet/): every instance beats here every
-- fleet.heartbeatMs, saying which providers it has work for; each instance
-- reads the live rows and takes its share of every provider's rate limit
-- and concurrency. A row silent for fleet.deadAfterMs is a dead instance.
CREATE TABLE IF NOT EXISTS fleet_instance (
  id            text NOT NULL,
  host          text NOT NULL DEFAULT '',
  pid           integer NOT NULL DEFAULT 0,
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now(),
  -- providers this instance has queued work for (they get a larger share)
  busy          text[] NOT NULL DEFAULT '{}',
  CONSTRAINT fleet_instance_pkey PRIMARY KEY (id)
);

-- A provider that answered 429 to any instance: the whole fleet holds its
-- sends for that provider until paused_until.
CREATE TABLE IF NOT EXISTS fleet_provider_pause (
  provider      text NOT NULL,
  paused_until  timestamptz NOT NULL,
  -- the instance that saw the 429 (its own lane already waits the provider's Retry-After)
  set_by        text NOT NULL DEFAULT '',
  CONSTRAINT fleet_provider_pause_pkey PRIMARY KEY (provider)
);

-- Which schema.sql was last applied (a SHA-256 of this file's text). An
-- instance that finds its own schema applied skips the statements above:
-- each takes a table lock even when it changes nothing, and an instance
-- joining a running fleet must not queue behind, or deadlock with, the
-- fleet's own transactions (src/store/schema.ts).
CREATE TABLE IF NOT EXISTS hermes_schema (
  id           smallint NOT NULL DEFAULT 1,
  fingerprint  text NOT NULL,
  applied_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT hermes_schema_pkey PRIMARY KEY (id),
  CONSTRAINT hermes_schema_one_row_check CHECK (id = 1)
);
