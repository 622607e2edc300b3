-- The site this database serves ('${site_name}' comes from vars.defaults or --var).
CREATE MATERIALIZED VIEW site AS
SELECT
    '${site_name}' AS name,
    'a; b -- not a comment' AS note;
