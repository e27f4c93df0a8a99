-- name: lock_and_touch_user
-- Every webhook: the user row (the truth) for this number, locked until the commit so two
-- messages of one user at once take turns instead of interleaving (idx_users_phone).
-- The same statement records the message as activity (RFC 3.1.5, fed to the GDPR
-- retention query) unless the user is blocked: one round trip instead of two.
-- last_active_at is the value before this touch: the time of the last message handled,
-- which the conversation state saved by that message carries (its freshness check).
-- The preferences the conversation needs (STATUS with notifications off, the reply
-- language) come in the same round trip; a user without a preferences row gets NULLs.
-- Always one row: the user's columns are NULL for a number with no user, and
-- first_delivery is false when the MessageSid had already changed state (a replay).
WITH recorded AS (
    -- The durable replay record, in the message's own transaction: a MessageSid already
    -- here (committed by an earlier delivery, or by a concurrent one that commits first)
    -- inserts nothing, and the message is a retry.
    INSERT INTO whatsapp_handler.handled_messages (message_sid, handled_at)
    VALUES (:message_sid, :now)
    ON CONFLICT (message_sid) DO NOTHING
    RETURNING 1
), locked AS (
    SELECT id, verified_at, blocked_at, terms_version, anonymized_at, last_active_at
      FROM whatsapp_handler.users
     WHERE phone_number = :phone_number
       FOR UPDATE
), touched AS (
    UPDATE whatsapp_handler.users AS users
       SET last_active_at = :now
      FROM locked
     WHERE users.id = locked.id AND locked.blocked_at IS NULL
)
SELECT locked.id, locked.verified_at, locked.blocked_at, locked.terms_version,
       locked.anonymized_at, locked.last_active_at,
       prefs.notification_enabled, prefs.language,
       EXISTS (SELECT 1 FROM recorded) AS first_delivery
  FROM (SELECT 1) AS one
  LEFT JOIN locked ON true
  LEFT JOIN whatsapp_handler.user_preferences AS prefs ON prefs.user_id = locked.id;

-- name: purge_handled_messages
-- The durable replay record past HANDLED_MESSAGE_RETENTION_DAYS, in bounded batches
-- (purge job; idx_handled_messages_handled_at).
WITH doomed AS (
    SELECT message_sid
      FROM whatsapp_handler.handled_messages
     WHERE handled_at < :cutoff
     LIMIT :batch_size
       FOR UPDATE SKIP LOCKED
)
DELETE FROM whatsapp_handler.handled_messages h
 USING doomed
 WHERE h.message_sid = doomed.message_sid;

-- name: count_purgeable_handled_messages
-- purge --dry-run: replay-record rows a purge with this cutoff would delete.
SELECT count(*) AS purgeable
  FROM whatsapp_handler.handled_messages
 WHERE handled_at < :cutoff;

-- name: recent_journeys
-- The digests of the journeys a user sent since :since (the claim window), oldest first,
-- for the warning before the same journey goes twice (D125). Read only for a message
-- to a claim's summary, the one place a YES sends a journey: joined to the lock
-- statement it cost every message ~56 us of its ~313 us.
SELECT fingerprint, submitted_at
  FROM whatsapp_handler.submitted_journeys
 WHERE user_id = :user_id AND submitted_at >= :since
 ORDER BY submitted_at;

-- name: record_submitted_journey
-- A journey.submitted's digest, in the transaction of its outbox row (D125): the same
-- journey sent again within the claim window is warned about. A repeat after the warning
-- keeps one row, at its latest time.
INSERT INTO whatsapp_handler.submitted_journeys (user_id, fingerprint, submitted_at)
VALUES (:user_id, :fingerprint, :submitted_at)
ON CONFLICT (user_id, fingerprint) DO UPDATE SET submitted_at = EXCLUDED.submitted_at;

-- name: purge_submitted_journeys
-- The journey record past the claim window (D125): never read again (a journey's date
-- must be inside the window), deleted in bounded batches by the daily purge
-- (idx_submitted_journeys_submitted_at).
WITH doomed AS (
    SELECT user_id, fingerprint
      FROM whatsapp_handler.submitted_journeys
     WHERE submitted_at < :cutoff
     LIMIT :batch_size
       FOR UPDATE SKIP LOCKED
)
DELETE FROM whatsapp_handler.submitted_journeys j
 USING doomed
 WHERE j.user_id = doomed.user_id AND j.fingerprint = doomed.fingerprint;

-- name: count_purgeable_submitted_journeys
-- purge --dry-run: journey-record rows a purge with this cutoff would delete.
SELECT count(*) AS purgeable
  FROM whatsapp_handler.submitted_journeys
 WHERE submitted_at < :cutoff;
