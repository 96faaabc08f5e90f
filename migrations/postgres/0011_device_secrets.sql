-- Sealed PIN reset secrets of devices (administration key, unlock code), apart from the device
-- records so that no read of a device carries them.
CREATE TABLE device_secrets (
    id         TEXT PRIMARY KEY,
    updated_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);

-- The service desk resets blocked PINs.
UPDATE roles SET permissions =
    '["devices:read","device:suspend","device:reactivate","device:pin_reset","certificates:read","certificate:suspend","certificate:reactivate","people:read"]'
    WHERE name = 'service-desk' AND built_in = 1;
