-- name: lease_notification
-- Exactly once per notification_id (contract 6a): the first deliverer inserts the row and
-- gets it back; a concurrent one waits on the row, then gets nothing. A leased row is
-- stored with status 'claimed' and its start in claimed_at (names kept, D121); one still
-- leased after the lease time belongs to an attempt that died mid-way: it is taken over,
-- and claimed_at becomes the new holder's token.
-- The lease comes back with what decide() needs of the recipient, so leasing and reading
-- the user and their preferences is one round trip, not three (measured: 3 statements ->
-- 1 saves ~0.2 ms of notifier and PostgreSQL CPU a notification). user_id is NULL when
-- there is no such user; has_preferences is false when they have no preferences row.
WITH lease AS (
    INSERT INTO whatsapp_handler.notification_deliveries
           (notification_id, user_id, status, claimed_at)
    VALUES (:notification_id, :user_id, 'claimed', :now)
    ON CONFLICT (notification_id) DO UPDATE
       SET claimed_at = EXCLUDED.claimed_at, user_id = EXCLUDED.user_id
     WHERE notification_deliveries.status = 'claimed'
       AND notification_deliveries.claimed_at < :stale_before
    RETURNING notification_id, claimed_at
)
SELECT lease.notification_id, lease.claimed_at,
       u.id AS user_id, u.phone_number, u.verified_at, u.last_active_at, u.blocked_at,
       u.anonymized_at,
       p.user_id IS NOT NULL AS has_preferences, p.notification_enabled, p.language
  FROM lease
  LEFT JOIN whatsapp_handler.users u ON u.id = :user_id
  LEFT JOIN whatsapp_handler.user_preferences p ON p.user_id = u.id;

-- name: find_notification_delivery
-- No lease granted: is the notification done (a duplicate) or in progress elsewhere?
SELECT notification_id, user_id, status, reason, message_sid, claimed_at, completed_at
  FROM whatsapp_handler.notification_deliveries
 WHERE notification_id = :notification_id;

-- name: complete_notification
-- 'sent', 'skipped' or 'failed', by the lease's holder only (claimed_at is its token), so
-- an attempt whose lease was taken over cannot overwrite the new holder's outcome.
UPDATE whatsapp_handler.notification_deliveries
   SET status = :status, reason = :reason, message_sid = :message_sid, completed_at = :now
 WHERE notification_id = :notification_id
   AND status = 'claimed'
   AND claimed_at = :leased_at;

-- name: complete_answered_notification
-- complete_notification for a message Twilio has answered, sent with its COMMIT in one
-- round trip (measured: the notifier's record 2 round trips -> 1, ~0.1 ms of CPU a
-- notification). Its row count cannot be read there, so a lease that is no longer ours
-- (taken over after it ran out) makes it fail on purpose instead: 1 / 0 rows updated is
-- SQLSTATE 22012 (division_by_zero), which the notifier logs as notification.claim_lost.
-- Nothing was changed, so the rollback that follows loses nothing. It returns no rows
-- (1 / 1 is not 0): a statement sent with the COMMIT must not, nobody reads them.
WITH completed AS (
    UPDATE whatsapp_handler.notification_deliveries
       SET status = :status, reason = :reason, message_sid = :message_sid, completed_at = :now
     WHERE notification_id = :notification_id
       AND status = 'claimed'
       AND claimed_at = :leased_at
    RETURNING notification_id
)
SELECT 1 FROM completed HAVING 1 / count(*) = 0;

-- name: release_notification_lease
-- Twilio may succeed later (5xx, 429, timeout): give the lease up so Pub/Sub's redelivery
-- can take it at once.
DELETE FROM whatsapp_handler.notification_deliveries
 WHERE notification_id = :notification_id
   AND status = 'claimed'
   AND claimed_at = :leased_at;

-- name: purge_notification_ledger
-- The ledger only has to outlive Pub/Sub's redeliveries of a notification (at most the
-- subscription's message retention); older rows go in bounded batches (purge job).
WITH doomed AS (
    SELECT notification_id
      FROM whatsapp_handler.notification_deliveries
     WHERE claimed_at < :cutoff
     LIMIT :batch_size
       FOR UPDATE SKIP LOCKED
)
DELETE FROM whatsapp_handler.notification_deliveries d
 USING doomed
 WHERE d.notification_id = doomed.notification_id;

-- name: count_purgeable_notification_ledger
-- purge --dry-run: ledger rows a purge with this cutoff would delete.
SELECT count(*) AS purgeable
  FROM whatsapp_handler.notification_deliveries
 WHERE claimed_at < :cutoff;

-- name: lock_notification_recipient
-- Held through the Twilio send (D74): an erasure (lock_users_for_erasure, FOR UPDATE)
-- waits until the message is out, and one that committed after the lease is seen here as
-- no row, so nothing goes to a number erased before the send. KEY SHARE does not block
-- the webhook's own updates of the row (last_active_at, OTP fields), only key changes
-- and FOR UPDATE; retention's SKIP LOCKED passes the row over until the next run.
SELECT id
  FROM whatsapp_handler.users
 WHERE id = :user_id
   AND phone_number = :phone_number
   AND anonymized_at IS NULL
   FOR KEY SHARE;
