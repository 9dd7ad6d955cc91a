"""What ties the stores together: leases and garbage collection."""
