-- Control law v2, closed loop (docs/control-law.md section 5): the limit each
-- SetChargingProfile carried, as the gateway sent it. A station that accepted a limit and
-- keeps drawing above it beyond uncontrolled_grace_seconds does not follow its limits;
-- the command's target is not enough to know that (the gateway holds back changes inside
-- its deadband, so the charger may have an older limit). Null for other actions and for
-- results written before this column existed.
ALTER SOURCE command_results ADD COLUMN limit_kw DOUBLE PRECISION;
