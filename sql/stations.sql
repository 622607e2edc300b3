-- Every configured station: online or offline, last seen, OCPP version, connector
-- statuses, its current limit and the last command's result.
SELECT
    station_id,
    zone_id,
    connection,
    last_seen,
    ocpp_version,
    connectors,
    max_kw,
    limit_kw,
    last_command,
    last_result,
    last_result_ts
FROM station_overview
ORDER BY zone_id, station_id;
