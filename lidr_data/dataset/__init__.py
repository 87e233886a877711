"""lidr_data/dataset"""
