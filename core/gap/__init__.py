"""gbp_lab.core.gap"""
