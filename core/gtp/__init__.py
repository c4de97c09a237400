"""gbp_lab.core.gtp"""
