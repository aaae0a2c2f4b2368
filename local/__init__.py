"""The local deployment: a stack's services and endpoints on 127.0.0.1, through the real router."""
