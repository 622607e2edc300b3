"""ocpp_gateway"""
