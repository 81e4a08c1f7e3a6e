"""Fault-injection tools: throwaway servers, a TCP fault proxy, and leak guards."""
