-- Every signal in force and what gridctl does with it: enforced, waiting for load data,
-- infeasible (by shortfall_kw) or without stations; the baseline and where it came from.
SELECT
    signal_id,
    zone_id,
    state,
    enforced_by,
    baseline_basis,
    ROUND(baseline_kw::NUMERIC, 1)::DOUBLE PRECISION AS baseline_kw,
    ROUND(cap_kw::NUMERIC, 1)::DOUBLE PRECISION AS cap_kw,
    shortfall_kw,
    uncontrollable_stations
FROM dr_signal_states
ORDER BY state <> 'enforced' DESC, zone_id, signal_id;
