"""lidr_data/stages"""
