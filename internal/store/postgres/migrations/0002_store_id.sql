-- The store's identity: a random id made when the store is created. rotor
-- marks each role it sets with it, so a role changed through another
-- store is recognised (`rotor adopt`).
CREATE TABLE store_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO store_meta (key, value) VALUES ('id', md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));
