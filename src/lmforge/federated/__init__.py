"""Federated learning: the one training loop run at several sites, their weights averaged
(FedAvg, FedProx); sites never share records."""
