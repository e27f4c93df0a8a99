-- name: claim_notification
-- Exactly once per notification_id (contract 6a): the first deliverer inserts the row and
-- gets it back; a concurrent one waits on the row, then gets nothing. A row still
-- 'claimed' after the lease belongs to an attempt that died mid-way: it is taken over,
-- and claimed_at becomes the new owner's token.
INSERT INTO whatsapp_handler.notification_deliveries
       (notification_id, user_id, status, claimed_at)
VALUES (:notification_id, :user_id, 'claimed', :now)
ON CONFLICT (notification_id) DO UPDATE
   SET claimed_at = EXCLUDED.claimed_at, user_id = EXCLUDED.user_id
 WHERE notification_deliveries.status = 'claimed'
   AND notification_deliveries.claimed_at < :stale_before
RETURNING notification_id, claimed_at;

-- name: find_notification_delivery
-- A claim lost: is the notification done (a duplicate) or still in progress elsewhere?
SELECT notification_id, user_id, status, reason, message_sid, claimed_at, completed_at
  FROM whatsapp_handler.notification_deliveries
 WHERE notification_id = :notification_id;

-- name: complete_notification
-- 'sent', 'skipped' or 'failed', by the claim's owner only (claimed_at is its token), so
-- an attempt whose lease was taken over cannot overwrite the new owner's outcome.
UPDATE whatsapp_handler.notification_deliveries
   SET status = :status, reason = :reason, message_sid = :message_sid, completed_at = :now
 WHERE notification_id = :notification_id
   AND status = 'claimed'
   AND claimed_at = :claimed_at;

-- name: release_notification_claim
-- Twilio may succeed later (5xx, 429, timeout): forget the claim so Pub/Sub's redelivery
-- can claim it again at once.
DELETE FROM whatsapp_handler.notification_deliveries
 WHERE notification_id = :notification_id
   AND status = 'claimed'
   AND claimed_at = :claimed_at;

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
