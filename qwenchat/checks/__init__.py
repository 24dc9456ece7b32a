"""Checks and housekeeping of a phone: doctor and clean compose the device, the bundle
layout and the Genie runner; they are features, not part of the transport."""
