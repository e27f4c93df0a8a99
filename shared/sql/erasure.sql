-- Erasure works on a set of users (one for a request, a batch for retention): each
-- statement below runs once for the whole set.

-- name: lock_users_for_erasure
-- Row locks first, in id order: a concurrent erasure of the same user waits, then finds
-- it done; two erasures of overlapping sets cannot deadlock.
SELECT id, phone_number
  FROM whatsapp_handler.users
 WHERE id = ANY(CAST(:user_ids AS uuid[])) AND anonymized_at IS NULL
 ORDER BY id
   FOR UPDATE;

-- name: anonymise_users
-- RFC 7.2, corrected: the marker fits VARCHAR(20) and the CHECK (D3), anonymized_at marks
-- it done for good (D4); an earlier block keeps its time, the reason becomes the erasure's.
UPDATE whatsapp_handler.users
   SET phone_number = 'ANON-' || left(replace(id::text, '-', ''), 15),
       display_name = NULL,
       otp_secret = NULL, otp_expires_at = NULL, otp_attempts = 0,
       blocked_at = COALESCE(blocked_at, :now),
       block_reason = :reason,
       anonymized_at = :now,
       updated_at = :now
 WHERE id = ANY(CAST(:user_ids AS uuid[])) AND anonymized_at IS NULL;

-- name: delete_preferences
-- RFC 7.1 says preferences go with the user; an anonymising UPDATE fires no cascade.
DELETE FROM whatsapp_handler.user_preferences WHERE user_id = ANY(CAST(:user_ids AS uuid[]));

-- name: scrub_unpublished_payloads
-- Events not yet published lose the free text and media a person gave us; ids stay so
-- consumers still see a consistent (if emptier) history. One pass over the unpublished
-- events for the whole set; the cheap key test runs before the id comparison.
UPDATE whatsapp_handler.outbox_events
   SET payload = payload - 'origin' - 'destination' - 'media' - 'ticket_media'
                         - 'display_name' || jsonb_build_object('erased', true)
 WHERE published_at IS NULL
   AND payload ?| array['origin', 'destination', 'media', 'ticket_media', 'display_name']
   AND payload ->> 'user_id' = ANY(CAST(:user_ids AS text[]));
