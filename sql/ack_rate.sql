-- How often chargers acknowledged the commands of each signal, over closed windows.
SELECT
    signal_id,
    SUM(results) AS results,
    SUM(accepted) AS accepted,
    ROUND((SUM(accepted)::NUMERIC / NULLIF(SUM(results), 0)), 3)::DOUBLE PRECISION AS ack_rate,
    MIN(window_start) AS first_window,
    MAX(window_end) AS last_window
FROM command_ack_windows
GROUP BY signal_id
ORDER BY ack_rate, signal_id;
