-- name: find_user_by_phone
-- Hot path, every webhook (RFC 6.1 query 1): one probe of the unique index idx_users_phone.
SELECT id, phone_number, display_name, verified_at, otp_verified_at, terms_accepted_at,
       terms_version, last_active_at, blocked_at, block_reason, anonymized_at, created_at
  FROM whatsapp_handler.users
 WHERE phone_number = :phone_number;

-- name: find_user_by_id
-- user_api and the notifier: the primary key.
SELECT id, phone_number, display_name, verified_at, otp_verified_at, terms_accepted_at,
       terms_version, last_active_at, blocked_at, block_reason, anonymized_at, created_at
  FROM whatsapp_handler.users
 WHERE id = :user_id;

-- name: insert_user
-- Registration. ON CONFLICT: two YES at once from one number make one user; the
-- loser gets no row back and re-reads the winner's.
INSERT INTO whatsapp_handler.users (phone_number, terms_accepted_at, terms_version,
                                    last_active_at)
VALUES (:phone_number, :terms_accepted_at, :terms_version, :now)
ON CONFLICT (phone_number) DO NOTHING
RETURNING id, created_at;

-- name: insert_default_preferences
-- Every user always has preferences (RFC 3.2); the defaults live in the table.
INSERT INTO whatsapp_handler.user_preferences (user_id)
VALUES (:user_id)
ON CONFLICT (user_id) DO NOTHING;

-- name: accept_terms
-- A returning unverified user re-accepting (or a terms update).
UPDATE whatsapp_handler.users
   SET terms_accepted_at = :now, terms_version = :terms_version, updated_at = :now
 WHERE id = :user_id;

-- name: store_otp
-- A new code replaces any old one and resets the attempt counter (RESEND invalidates).
-- Returns the replaced code's hash (the row is locked by lock_and_touch_user), so an old
-- code typed later can be told apart from a wrong one (issue 20).
WITH previous AS (
    SELECT otp_secret FROM whatsapp_handler.users WHERE id = :user_id
)
UPDATE whatsapp_handler.users
   SET otp_secret = :otp_secret, otp_expires_at = :expires_at, otp_attempts = 0,
       updated_at = :now
 WHERE id = :user_id
RETURNING (SELECT otp_secret FROM previous) AS previous_secret;

-- name: take_otp_attempt
-- Atomic attempt counter: concurrent guesses cannot exceed the limit, because the
-- increment and the check are one statement under the row lock.
UPDATE whatsapp_handler.users
   SET otp_attempts = otp_attempts + 1
 WHERE id = :user_id
   AND otp_secret IS NOT NULL
   AND otp_attempts < :max_attempts
RETURNING otp_secret, otp_expires_at, otp_attempts;

-- name: clear_otp
-- Single use: a verified (or exhausted) code is gone.
UPDATE whatsapp_handler.users
   SET otp_secret = NULL, otp_expires_at = NULL, otp_attempts = 0, updated_at = :now
 WHERE id = :user_id;

-- name: mark_verified
-- verified_at keeps the first verification; otp_verified_at the latest (decision D1).
UPDATE whatsapp_handler.users
   SET verified_at = COALESCE(verified_at, :now), otp_verified_at = :now,
       otp_secret = NULL, otp_expires_at = NULL, otp_attempts = 0, updated_at = :now
 WHERE id = :user_id;
