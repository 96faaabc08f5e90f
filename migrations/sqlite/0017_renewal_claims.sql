-- One renewal per certificate, claimed in the same unit as the renewal's insert, so two
-- concurrent renewals of one certificate cannot both be recorded.
CREATE TABLE certificate_renewals (
    renewed_from TEXT PRIMARY KEY,
    renewal_id   TEXT NOT NULL,
    claimed_at   BIGINT NOT NULL
);
