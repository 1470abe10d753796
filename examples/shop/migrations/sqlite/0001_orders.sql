-- The shop's orders (SQLite, a file in the working directory).
CREATE TABLE orders (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id  INTEGER NOT NULL,
    quantity    INTEGER NOT NULL,
    payment     TEXT NOT NULL,
    total_euros REAL NOT NULL,
    placed_by   TEXT NOT NULL
);
