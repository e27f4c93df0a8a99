-- name: find_preferences
-- RFC 6.1 query 2: one probe of idx_user_prefs_user.
SELECT user_id, notification_enabled, language, timezone, delay_threshold_minutes,
       auto_claim_enabled, updated_at
  FROM whatsapp_handler.user_preferences
 WHERE user_id = :user_id;

-- name: set_language
-- ENGLISH / CYMRAEG in the conversation; the notifier's template choice reads it too.
INSERT INTO whatsapp_handler.user_preferences (user_id, language, updated_at)
VALUES (:user_id, :language, :now)
ON CONFLICT (user_id)
DO UPDATE SET language = EXCLUDED.language, updated_at = :now;

-- name: set_notification_enabled
-- STOP / START. Upsert: a user whose preferences row is missing still gets the switch.
INSERT INTO whatsapp_handler.user_preferences (user_id, notification_enabled, updated_at)
VALUES (:user_id, :enabled, :now)
ON CONFLICT (user_id)
DO UPDATE SET notification_enabled = EXCLUDED.notification_enabled, updated_at = :now;
