"""English replies (complete: every key of R). Fields in braces are filled by ``say``."""

from __future__ import annotations

from collections.abc import Mapping

from shared.replies.keys import R

TEXTS: Mapping[R, str] = {
    R.WELCOME: (
        "Hello! RailRepay helps you claim compensation when your train is delayed. "
        "Please read our terms at {terms_url} and reply YES to accept them and sign up."
    ),
    R.MENU: (
        "What would you like to do?\n"
        "1 CLAIM - claim for a delayed train\n"
        "2 STATUS - news on your claims\n"
        "Or send a photo or PDF of your ticket. HELP lists everything."
    ),
    R.SUMMARY: (
        "Please check your claim:\n"
        "1 Date: {date}\n"
        "2 From: {origin}\n"
        "   To: {destination}\n"
        "3 Departure: {time}\n"
        "4 Ticket: {ticket}\n"
        "Reply YES to send it, a number to change that answer, or CANCEL."
    ),
    R.SUMMARY_TICKET_NONE: "none",
    R.SUMMARY_TICKET_ONE: "1 file attached",
    R.SUMMARY_TICKET_MANY: "{count} files attached",
    R.PROMPT_TERMS: "Reply YES to accept our terms ({terms_url}) and sign up.",
    R.PROMPT_CODE: "Reply with the 6-digit code we sent you by SMS, or RESEND for a new one.",
    R.PROMPT_CODE_NO_RESEND: "Reply with the 6-digit code we sent you by SMS.",
    R.PROMPT_MENU: (
        "Reply CLAIM to claim for a delayed train, send a photo of your ticket, or HELP."
    ),
    R.PROMPT_ERASURE: "Reply YES to delete your data for good, or anything else to keep it.",
    R.PROMPT_DATE: (
        "Which day did you travel? For example: today, yesterday, Monday, 15 Nov or 15/11/2026."
    ),
    R.PROMPT_STATIONS: "Which stations did you travel between? For example: Leeds to York.",
    R.PROMPT_TIME: "What time was the train due to leave? For example: 08:02 or 8am.",
    R.PROMPT_TICKET: (
        "Please send a photo or PDF of your ticket, or reply SKIP if you don't have it."
    ),
    R.PROMPT_TICKET_REPLACE: (
        "Send a new photo or PDF of your ticket (it replaces the one attached), "
        "or reply SKIP to keep what you have."
    ),
    R.CLAIM_OPTIONS: "(BACK: the previous question. CANCEL: stop the claim. HELP: more.)",
    R.HELP_INTRO: "RailRepay helps you claim compensation for delayed trains.",
    R.HELP_YES: "YES - accept our terms and sign up",
    R.HELP_RESEND: "RESEND - a new sign-up code by SMS",
    R.HELP_RESEND_LATER: "RESEND works again after {time}. Stuck? Email {email}.",
    R.HELP_CLAIM: "CLAIM - claim for a delayed train",
    R.HELP_STATUS: "STATUS - news on your claims",
    R.HELP_CANCEL: "CANCEL - stop a claim you've started",
    R.HELP_STOP_START: "STOP / START - notifications off / on",
    R.HELP_MENU: "MENU - your options",
    R.HELP_DELETE: "DELETE MY DATA - erase your account",
    R.HELP_LANGUAGE: "ENGLISH / CYMRAEG - the language we reply in",
    R.HELP_TICKET: "Or send a photo or PDF of your ticket.",
    R.BLOCKED: (
        "Sorry, this number can't use RailRepay. If you think that's a mistake, or want your "
        "data deleted, email {email}."
    ),
    R.RATE_LIMITED: (
        "You're sending messages faster than we can answer. Please wait a minute, then try again."
    ),
    R.OTP_SENT: (
        "We've sent a 6-digit code by SMS to this number. Reply here with it within "
        "{minutes} minutes."
    ),
    R.OTP_RATE_LIMITED: (
        "We've sent as many codes as we can for now. Please try again in an hour "
        "by replying RESEND."
    ),
    R.OTP_RATE_LIMITED_UNTIL: (
        "We've sent as many codes as we can for now. Reply RESEND after {time} (UK time) "
        "for a new one. Stuck? Email {email}."
    ),
    R.OTP_FAILED: "We couldn't send your code by SMS just now. Reply RESEND to try again.",
    R.VERIFIED: "You're verified. Welcome to RailRepay!",
    R.OTP_WRONG_ONE: "That code isn't right. You have 1 try left.",
    R.OTP_WRONG_MANY: "That code isn't right. You have {count} tries left.",
    R.OTP_EXHAUSTED: "That code isn't right, and it can't be used again.",
    R.OTP_EXPIRED: "That code has expired.",
    R.OTP_NO_CODE: "That code is no longer valid.",
    R.OTP_REPLACED: (
        "That's an older code: a newer one replaced it (no try used). Please use the "
        "latest code we sent."
    ),
    R.OTP_RESEND_HINT: "Reply RESEND for a new one.",
    R.TERMS_ACCEPTED: "Thanks for accepting our terms.",
    R.TERMS_ACCEPTED_UNSEEN: (
        "Thanks for accepting our terms ({terms_url}); reply DELETE MY DATA at any time "
        "if you change your mind."
    ),
    R.TERMS_DECLINED: (
        "No problem. We can only help once you've accepted our terms: reply YES whenever "
        "you're ready."
    ),
    R.CODE_DIGITS: "Codes have 6 digits.",
    R.CODE_WAITING: "I'm waiting for your code.",
    R.WELCOME_BACK_SHORT: "Welcome back.",
    R.ALREADY_VERIFIED: "Your number is already verified.",
    R.IN_A_CLAIM: "You're in the middle of a claim; reply CANCEL to stop it.",
    R.STOP_GUEST: "We only message registered users.",
    R.NOTIFICATIONS_OFF: (
        "Notifications are off: we won't message you. Reply START to turn them back on."
    ),
    R.NOTIFICATIONS_ON: (
        "Notifications are on: we'll message you when there's news about your claims."
    ),
    R.NO_DATA: "We don't hold any personal data for this number.",
    R.ERASURE_ASK: (
        "This deletes your RailRepay account and personal data, and can't be undone. "
        "Reply YES to delete it, or anything else to keep it."
    ),
    R.ERASURE_SAY_YES: (
        "To delete your account and data for good, reply with the word YES. Anything else keeps it."
    ),
    R.ERASED: (
        "Done: we've deleted your RailRepay account and personal data. If you message us "
        "again, we'll start afresh."
    ),
    R.KEPT_DATA: "OK, we haven't deleted anything.",
    R.NEEDS_VERIFICATION: "You can do that once your number is verified.",
    R.STATUS_REQUESTED: "We've asked for the latest on your claims and will message you here.",
    R.STATUS_NOTIFICATIONS_OFF: (
        "Your notifications are off, so we can't send you news about your claims. "
        "Reply START to turn them on, then STATUS again."
    ),
    R.WELCOME_BACK: "Welcome back to RailRepay!",
    R.NOT_UNDERSTOOD: "Sorry, I didn't follow that.",
    R.CLAIM_DROPPED: (
        "Your unfinished claim was dropped after {hours} hours without a reply, and nothing "
        "was sent."
    ),
    R.CLAIM_AGAIN: "Reply CLAIM to start again.",
    R.CLAIM_STARTED: "Let's claim for your delayed train (reply CANCEL at any time to stop).",
    R.CLAIM_TICKET_ADDED: "I've added the ticket you sent.",
    R.ALREADY_CLAIMING: "You're already making a claim.",
    R.CLAIM_CANCELLED: "OK, claim cancelled: nothing was sent.",
    R.GOT_DATE: "Got it: {date}.",
    R.GOT_STATIONS: "Got it: {origin} to {destination}.",
    R.GOT_TIME: "Got it: {time}.",
    R.NEED_TICKET: "I need a photo or PDF of your ticket here.",
    R.SOMETHING_MISSING: "There's something missing.",
    R.SUBMITTED: (
        "Thanks! We've sent your claim for the {time} {origin} to {destination} train on "
        "{date}. We'll message you here when we've matched your journey."
    ),
    R.FIRST_QUESTION: "This is the first question.",
    R.BACK_TO: "OK, back to the {field}.",
    R.CHANGE_FIELD: "OK, let's change the {field}.",
    R.NOW_SET: "(Now: {value}; SKIP keeps it.)",
    R.WHAT_TO_CHANGE: (
        "What would you like to change? Reply 1 for the date, 2 the stations, 3 the time "
        "or 4 the ticket; YES to send it as it is, or CANCEL to drop it."
    ),
    R.PROPOSE_DATE: "Change the date to {value}? Reply YES or NO.",
    R.PROPOSE_STATIONS: "Change the stations to {value}? Reply YES or NO.",
    R.PROPOSE_TIME: "Change the time to {value}? Reply YES or NO.",
    R.CHANGED: "Changed.",
    R.UNCHANGED: "OK, left as it was.",
    R.FIELD_DATE: "date",
    R.FIELD_STATIONS: "stations",
    R.FIELD_TIME: "time",
    R.FIELD_TICKET: "ticket",
    R.GOT_TICKET: "Got your ticket.",
    R.TICKET_OUTSIDE_CLAIM_MORE: (
        "Thanks, that's {count} ticket files kept. Reply CLAIM to claim for a delay on this "
        "journey, or MENU for other options."
    ),
    R.SKIPPED_ONE: "(1 file skipped: only photos and PDFs.)",
    R.SKIPPED_MANY: "({count} files skipped: only photos and PDFs.)",
    R.NOT_A_TICKET: "I can only take photos or PDFs of tickets.",
    R.STICKER: (
        "That looks like a sticker, not a ticket: please send a photo or PDF of your ticket."
    ),
    R.TICKET_OUTSIDE_CLAIM: (
        "Thanks, we've got your ticket. Reply CLAIM to claim for a delay on this journey, "
        "or MENU for other options."
    ),
    R.TICKET_TOO_EARLY: (
        "We can't keep tickets until your number is verified: please send it again once "
        "you're verified."
    ),
    R.DUPLICATE_JOURNEY: (
        "You already sent a claim for this journey on {when}. Reply YES to send it again "
        "anyway, NO to change it, or CANCEL."
    ),
    R.PROMPT_ORIGIN: "Which station did you start from? (To: {destination}.)",
    R.PROMPT_DESTINATION: "Which station did you travel to? (From: {origin}.)",
    R.STATION_NOT_FOUND: 'I couldn\'t find a station called "{typed}".',
    R.STATION_CHOICE: (
        'Which "{typed}" did you mean?\n{options}\nReply with a number, or type the name again.'
    ),
    R.STATION_OPTION: "{number} {name}",
    R.REASON_SAME_STATIONS: "The two stations are the same.",
    R.AM_OR_PM: "Is that {time}am or {time}pm?",
    R.REASON_DATE_UNREAD: "I couldn't read that date.",
    R.REASON_DATE_NOT_THIS_YEAR: "That date is not in the last year.",
    R.REASON_STATIONS_TOO_LONG: "That's longer than two station names.",
    R.REASON_STATIONS_BOTH: "I need both stations, with 'to' between them.",
    R.REASON_STATIONS_JUST_TWO: (
        "Please give just two stations: where you got on and where you got off."
    ),
    R.REASON_STATION_LETTERS: "A station name needs letters.",
    R.REASON_TIME_UNREAD: "I couldn't read that time.",
    R.REASON_TIME_AM_AND_PM: "That time says both am and pm.",
    R.REASON_TIME_NOT_ON_CLOCK: "That isn't a time on the clock.",
    R.REASON_TIME_CLOCKS_FORWARD: "The clocks went forward that night, so that time didn't exist.",
    R.REASON_TIME_NOT_YET: "That time hasn't come yet today.",
    R.REASON_DATE_IN_FUTURE: "{typed} reads as {date}, which is in the future.",
    R.REASON_DATE_TOO_OLD: (
        "{typed} reads as {date}, more than {days} days ago "
        "(claims must be made within {days} days of travel)."
    ),
    R.REASON_STATION_TOO_LONG: "Station names are at most {limit} characters.",
    R.LANGUAGE_SET: "OK, we'll reply in English.",
    R.LANGUAGE_PARTIAL: (
        "Diolch! We've saved Welsh (Cymraeg) as your language; our Welsh replies aren't "
        "ready yet, so for now most replies stay in English. Reply ENGLISH to switch back."
    ),
}
