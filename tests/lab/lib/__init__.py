"""dsrlb network-namespace lab: lab.Lab (topology, commands, daemons), servers (backend servers),
client (traffic from the client namespace), capture (tcpdump/scapy and ARP probes)."""
