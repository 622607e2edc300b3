-- OCPP 2.0.1 StatusNotification names the EVSE (connector_id, as in meter values) and the
-- connector within it: an EVSE with two connectors reports each, and one of them Occupied
-- means a vehicle is there whatever the other says. Null for 1.6 and for status events
-- written before this column existed (each then stands for its EVSE's connector 1).
ALTER SOURCE station_status ADD COLUMN evse_connector_id INT;
