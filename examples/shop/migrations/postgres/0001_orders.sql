-- The shop's orders (Postgres): ids from one sequence, so that every
-- replica sharing the database hands out distinct ids.
CREATE TABLE orders (
    id          BIGSERIAL PRIMARY KEY,
    product_id  BIGINT NOT NULL,
    quantity    BIGINT NOT NULL,
    payment     TEXT NOT NULL,
    total_euros DOUBLE PRECISION NOT NULL,
    placed_by   TEXT NOT NULL
);
