-- Notes about the site; the ';' and '--' inside strings do not end or comment anything.
CREATE TABLE site_notes (
    note VARCHAR,
    added_ts TIMESTAMPTZ
);
