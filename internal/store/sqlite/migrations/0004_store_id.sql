-- The store's identity: a random id made when the store is created. rotor
-- marks each role it sets with it, so a role changed through another
-- store is recognised (`rotor adopt`).
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
INSERT INTO store_meta (key, value) VALUES ('id', lower(hex(randomblob(16))));
