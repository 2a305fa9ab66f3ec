package proto

import "time"

// DownUntil reports when the background probe may next dial the endpoint
// addr (zero: the endpoint is up or unknown).
func (c *Client) DownUntil(addr string) time.Time {
	p := c.snap.Load()
	if p == nil {
		return time.Time{}
	}
	for _, ep := range *p {
		if ep.addr == addr {
			ep.mu.Lock()
			defer ep.mu.Unlock()
			if ep.failures == 0 {
				return time.Time{}
			}
			return ep.downUntil
		}
	}
	return time.Time{}
}
