"""Board platforms (iCEBreaker, ULX3S), top wrappers, host link and bitstream builds."""
