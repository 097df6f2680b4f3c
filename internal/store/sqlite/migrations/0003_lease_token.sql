-- Fencing tokens. A released lease keeps its row (holder '') so that the
-- token never goes back: a holder that lost its lease must never find its
-- old token valid again. Leases held when this migration runs start at 1,
-- because 0 is the "unchecked" fence.
ALTER TABLE leases ADD COLUMN token INTEGER NOT NULL DEFAULT 0;
UPDATE leases SET token = 1;
