-- History rows keep the member's photo (0012 added members.photo_id) (postgres). Keep in step with the other engine's 0013.
ALTER TABLE member_history ADD COLUMN photo_id TEXT;
