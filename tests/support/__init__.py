"""What the tests use and test nothing themselves: fake NAT servers, receivers, factories, real processes."""
