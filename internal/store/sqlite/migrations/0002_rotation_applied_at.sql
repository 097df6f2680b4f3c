-- When the server got the rotation's new password (NULL: not yet, or a
-- rotation journaled by a rotor that kept it only in the apply step's
-- detail; the engine falls back to that text).
ALTER TABLE rotations ADD COLUMN applied_at INTEGER;
