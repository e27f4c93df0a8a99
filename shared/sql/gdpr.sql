-- name: gdpr_lock_inactive_users
-- Retention (RFC 6.1 query 4, corrected, D4): blocked users are included, anonymised ones
-- never come back. Oldest first, one bounded batch; SKIP LOCKED lets two runs share the
-- work without waiting on (or deadlocking with) each other or a user's live request.
-- The rows come back locked, not anonymised, with the number to forget in Redis: the
-- batch erases them as they are (erase_locked_users), with no second lookup and lock.
SELECT id, phone_number
  FROM whatsapp_handler.users
 WHERE last_active_at < :cutoff
   AND anonymized_at IS NULL
   AND NOT (id = ANY(CAST(:skip_ids AS uuid[])))
 ORDER BY last_active_at, id
 LIMIT :batch_size
   FOR UPDATE SKIP LOCKED;

-- name: gdpr_preview_inactive_users
-- Dry run: how many users retention would anonymise now, and the oldest last activity.
SELECT count(*) AS candidates, min(last_active_at) AS oldest_last_active_at
  FROM whatsapp_handler.users
 WHERE last_active_at < :cutoff
   AND anonymized_at IS NULL;


-- name: gdpr_live_numbers
-- Of the numbers just erased, those that have a live (not anonymised) user row again:
-- the person signed up anew since, and their Redis state is the new user's to keep.
SELECT phone_number
  FROM whatsapp_handler.users
 WHERE phone_number = ANY(CAST(:phone_numbers AS text[]))
   AND anonymized_at IS NULL;
