# Sample guests: placeholder until the guest SDK lands.
guests:
