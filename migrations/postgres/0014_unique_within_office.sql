-- Device serials and people's source ids are unique within an office, not across offices: a
-- value unique across offices would tell an operator who sees one office that another office
-- holds it (an existence oracle).
ALTER TABLE devices DROP CONSTRAINT devices_serial_key;
CREATE UNIQUE INDEX devices_office_serial ON devices (office_id, serial);
CREATE INDEX devices_serial ON devices (serial);

ALTER TABLE people DROP CONSTRAINT people_external_id_key;
CREATE UNIQUE INDEX people_office_external_id ON people (office_id, external_id);
CREATE INDEX people_external_id ON people (external_id);
