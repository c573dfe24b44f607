"""Found on the LAN: mDNS/DNS-SD advertisement of this instance and browsing for others."""
