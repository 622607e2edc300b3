"""dr_bridge"""
