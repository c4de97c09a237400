"""gbp_lab.core.gbp"""
