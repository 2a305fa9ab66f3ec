package proto

// Wire encodings of the message types, field by field in the order of
// PROTOCOL.md §10 (see wire.go for the forms).

// MarshalWire appends nothing: Empty has no fields.
func (Empty) MarshalWire(dst []byte) []byte { return dst }

// UnmarshalWire reads nothing.
func (*Empty) UnmarshalWire(*Decoder) {}

// MarshalWire appends nothing: InfoRequest has no fields.
func (InfoRequest) MarshalWire(dst []byte) []byte { return dst }

// UnmarshalWire reads nothing.
func (*InfoRequest) UnmarshalWire(*Decoder) {}

// decodeList reads a count and that many elements. The slice grows as
// elements arrive rather than being made at the announced count, so a
// count that lies costs memory in proportion to the elements actually
// there, not to the count. (A decoded element is bigger than its smallest
// encoding: a 7-byte Message is a 96-byte struct, so a body of n bytes can
// become up to about 30n bytes of slices. Only responses carry lists, and
// the payload limit bounds n.)
func decodeList[T any, PT interface {
	*T
	WireUnmarshaler
}](d *Decoder) []T {
	n := d.Count()
	list := make([]T, 0, min(n, 64))
	var zero T
	for range n {
		list = append(list, zero)
		PT(&list[len(list)-1]).UnmarshalWire(d) // in place: a local would escape through PT
		if d.err != nil {
			return nil
		}
	}
	return list
}

// MarshalWire appends the wire encoding of i.
func (i InfoResponse) MarshalWire(dst []byte) []byte {
	dst = AppendString(dst, i.Server)
	dst = AppendBool(dst, i.DemoData)
	dst = AppendInt(dst, int64(i.MinPassword))
	dst = AppendInt(dst, int64(i.MaxPassword))
	dst = AppendInt(dst, i.DailyLimit)
	dst = AppendString(dst, i.LimitCurrency)
	dst = AppendInt(dst, int64(i.IdleTimeoutSec))
	return dst
}

// UnmarshalWire reads i from d.
func (i *InfoResponse) UnmarshalWire(d *Decoder) {
	i.Server = d.Text()
	i.DemoData = d.Bool()
	i.MinPassword = d.IntN()
	i.MaxPassword = d.IntN()
	i.DailyLimit = d.Int()
	i.LimitCurrency = d.Text()
	i.IdleTimeoutSec = d.IntN()
}

// MarshalWire appends the wire encoding of c.
func (c ClientInfo) MarshalWire(dst []byte) []byte {
	dst = AppendString(dst, c.IP)
	dst = AppendString(dst, c.UserAgent)
	return dst
}

// UnmarshalWire reads c from d.
func (c *ClientInfo) UnmarshalWire(d *Decoder) {
	c.IP = d.Text()
	c.UserAgent = d.Text()
}

// MarshalWire appends the wire encoding of s.
func (s SignUpRequest) MarshalWire(dst []byte) []byte {
	dst = AppendString(dst, s.Username)
	dst = AppendString(dst, s.DisplayName)
	dst = AppendString(dst, s.Password)
	dst = s.ClientInfo.MarshalWire(dst)
	return dst
}

// UnmarshalWire reads s from d.
func (s *SignUpRequest) UnmarshalWire(d *Decoder) {
	s.Username = d.Text()
	s.DisplayName = d.Text()
	s.Password = d.Text()
	s.ClientInfo.UnmarshalWire(d)
}

// MarshalWire appends the wire encoding of s.
func (s SignInRequest) MarshalWire(dst []byte) []byte {
	dst = AppendString(dst, s.Username)
	dst = AppendString(dst, s.Password)
	dst = s.ClientInfo.MarshalWire(dst)
	return dst
}

// UnmarshalWire reads s from d.
func (s *SignInRequest) UnmarshalWire(d *Decoder) {
	s.Username = d.Text()
	s.Password = d.Text()
	s.ClientInfo.UnmarshalWire(d)
}

// MarshalWire appends the wire encoding of c.
func (c Customer) MarshalWire(dst []byte) []byte {
	dst = AppendInt(dst, c.ID)
	dst = AppendString(dst, c.Username)
	dst = AppendString(dst, c.DisplayName)
	return dst
}

// UnmarshalWire reads c from d.
func (c *Customer) UnmarshalWire(d *Decoder) {
	c.ID = d.Int()
	c.Username = d.Text()
	c.DisplayName = d.Text()
}

// MarshalWire appends the wire encoding of s.
func (s SignInResponse) MarshalWire(dst []byte) []byte {
	dst = AppendString(dst, s.Token)
	dst = AppendTime(dst, s.ExpiresAt)
	dst = s.Customer.MarshalWire(dst)
	return dst
}

// UnmarshalWire reads s from d.
func (s *SignInResponse) UnmarshalWire(d *Decoder) {
	s.Token = d.Text()
	s.ExpiresAt = d.Time()
	s.Customer.UnmarshalWire(d)
}

// MarshalWire appends the wire encoding of s.
func (s SessionRequest) MarshalWire(dst []byte) []byte {
	dst = AppendString(dst, s.Session)
	return dst
}

// UnmarshalWire reads s from d.
func (s *SessionRequest) UnmarshalWire(d *Decoder) {
	s.Session = d.Text()
}

// MarshalWire appends the wire encoding of s.
func (s SessionResponse) MarshalWire(dst []byte) []byte {
	dst = s.Customer.MarshalWire(dst)
	dst = AppendTime(dst, s.ExpiresAt)
	return dst
}

// UnmarshalWire reads s from d.
func (s *SessionResponse) UnmarshalWire(d *Decoder) {
	s.Customer.UnmarshalWire(d)
	s.ExpiresAt = d.Time()
}

// MarshalWire appends the wire encoding of a.
func (a Account) MarshalWire(dst []byte) []byte {
	dst = AppendString(dst, a.Number)
	dst = AppendString(dst, a.Kind)
	dst = AppendString(dst, a.Currency)
	dst = AppendInt(dst, a.Balance)
	dst = AppendTime(dst, a.CreatedAt)
	return dst
}

// UnmarshalWire reads a from d.
func (a *Account) UnmarshalWire(d *Decoder) {
	a.Number = d.Text()
	a.Kind = d.Text()
	a.Currency = d.Text()
	a.Balance = d.Int()
	a.CreatedAt = d.Time()
}

// MarshalWire appends the wire encoding of a.
func (a AccountsResponse) MarshalWire(dst []byte) []byte {
	dst = AppendCount(dst, len(a.Accounts))
	for _, e := range a.Accounts {
		dst = e.MarshalWire(dst)
	}
	return dst
}

// UnmarshalWire reads a from d.
func (a *AccountsResponse) UnmarshalWire(d *Decoder) {
	a.Accounts = decodeList[Account](d)
}

// MarshalWire appends the wire encoding of o.
func (o OpenAccountRequest) MarshalWire(dst []byte) []byte {
	dst = o.SessionRequest.MarshalWire(dst)
	dst = AppendString(dst, o.Kind)
	dst = AppendString(dst, o.Currency)
	return dst
}

// UnmarshalWire reads o from d.
func (o *OpenAccountRequest) UnmarshalWire(d *Decoder) {
	o.SessionRequest.UnmarshalWire(d)
	o.Kind = d.Text()
	o.Currency = d.Text()
}

// MarshalWire appends the wire encoding of a.
func (a AccountRequest) MarshalWire(dst []byte) []byte {
	dst = a.SessionRequest.MarshalWire(dst)
	dst = AppendString(dst, a.Number)
	return dst
}

// UnmarshalWire reads a from d.
func (a *AccountRequest) UnmarshalWire(d *Decoder) {
	a.SessionRequest.UnmarshalWire(d)
	a.Number = d.Text()
}

// MarshalWire appends the wire encoding of a.
func (a AccountResponse) MarshalWire(dst []byte) []byte {
	dst = a.Account.MarshalWire(dst)
	return dst
}

// UnmarshalWire reads a from d.
func (a *AccountResponse) UnmarshalWire(d *Decoder) {
	a.Account.UnmarshalWire(d)
}

// MarshalWire appends the wire encoding of h.
func (h HistoryRequest) MarshalWire(dst []byte) []byte {
	dst = h.SessionRequest.MarshalWire(dst)
	dst = AppendString(dst, h.Number)
	dst = AppendString(dst, h.Cursor)
	dst = AppendInt(dst, int64(h.Limit))
	return dst
}

// UnmarshalWire reads h from d.
func (h *HistoryRequest) UnmarshalWire(d *Decoder) {
	h.SessionRequest.UnmarshalWire(d)
	h.Number = d.Text()
	h.Cursor = d.Text()
	h.Limit = d.IntN()
}

// MarshalWire appends the wire encoding of e.
func (e Entry) MarshalWire(dst []byte) []byte {
	dst = AppendInt(dst, e.ID)
	dst = AppendInt(dst, e.TransferID)
	dst = AppendInt(dst, e.Amount)
	dst = AppendInt(dst, e.BalanceAfter)
	dst = AppendString(dst, e.Currency)
	dst = AppendString(dst, e.Counterparty)
	dst = AppendString(dst, e.Memo)
	dst = AppendTime(dst, e.CreatedAt)
	return dst
}

// UnmarshalWire reads e from d.
func (e *Entry) UnmarshalWire(d *Decoder) {
	e.ID = d.Int()
	e.TransferID = d.Int()
	e.Amount = d.Int()
	e.BalanceAfter = d.Int()
	e.Currency = d.Text()
	e.Counterparty = d.Text()
	e.Memo = d.Text()
	e.CreatedAt = d.Time()
}

// MarshalWire appends the wire encoding of h.
func (h HistoryResponse) MarshalWire(dst []byte) []byte {
	dst = h.Account.MarshalWire(dst)
	dst = AppendCount(dst, len(h.Entries))
	for _, e := range h.Entries {
		dst = e.MarshalWire(dst)
	}
	dst = AppendString(dst, h.NextCursor)
	return dst
}

// UnmarshalWire reads h from d.
func (h *HistoryResponse) UnmarshalWire(d *Decoder) {
	h.Account.UnmarshalWire(d)
	h.Entries = decodeList[Entry](d)
	h.NextCursor = d.Text()
}

// MarshalWire appends the wire encoding of t.
func (t TransferRequest) MarshalWire(dst []byte) []byte {
	dst = t.SessionRequest.MarshalWire(dst)
	dst = AppendString(dst, t.IdempotencyKey)
	dst = AppendString(dst, t.From)
	dst = AppendString(dst, t.To)
	dst = AppendString(dst, t.Amount)
	dst = AppendString(dst, t.Memo)
	return dst
}

// UnmarshalWire reads t from d.
func (t *TransferRequest) UnmarshalWire(d *Decoder) {
	t.SessionRequest.UnmarshalWire(d)
	t.IdempotencyKey = d.Text()
	t.From = d.Text()
	t.To = d.Text()
	t.Amount = d.Text()
	t.Memo = d.Text()
}

// MarshalWire appends the wire encoding of t.
func (t Transfer) MarshalWire(dst []byte) []byte {
	dst = AppendInt(dst, t.ID)
	dst = AppendString(dst, t.From)
	dst = AppendString(dst, t.To)
	dst = AppendInt(dst, t.Amount)
	dst = AppendString(dst, t.Currency)
	dst = AppendString(dst, t.Memo)
	dst = AppendTime(dst, t.CreatedAt)
	return dst
}

// UnmarshalWire reads t from d.
func (t *Transfer) UnmarshalWire(d *Decoder) {
	t.ID = d.Int()
	t.From = d.Text()
	t.To = d.Text()
	t.Amount = d.Int()
	t.Currency = d.Text()
	t.Memo = d.Text()
	t.CreatedAt = d.Time()
}

// MarshalWire appends the wire encoding of t.
func (t TransferResponse) MarshalWire(dst []byte) []byte {
	dst = t.Transfer.MarshalWire(dst)
	dst = AppendBool(dst, t.Replayed)
	return dst
}

// UnmarshalWire reads t from d.
func (t *TransferResponse) UnmarshalWire(d *Decoder) {
	t.Transfer.UnmarshalWire(d)
	t.Replayed = d.Bool()
}

// MarshalWire appends the wire encoding of t.
func (t TransferGetRequest) MarshalWire(dst []byte) []byte {
	dst = t.SessionRequest.MarshalWire(dst)
	dst = AppendInt(dst, t.ID)
	return dst
}

// UnmarshalWire reads t from d.
func (t *TransferGetRequest) UnmarshalWire(d *Decoder) {
	t.SessionRequest.UnmarshalWire(d)
	t.ID = d.Int()
}

// MarshalWire appends the wire encoding of t.
func (t TransferResolveRequest) MarshalWire(dst []byte) []byte {
	dst = t.SessionRequest.MarshalWire(dst)
	dst = AppendString(dst, t.IdempotencyKey)
	dst = AppendString(dst, t.From)
	return dst
}

// UnmarshalWire reads t from d.
func (t *TransferResolveRequest) UnmarshalWire(d *Decoder) {
	t.SessionRequest.UnmarshalWire(d)
	t.IdempotencyKey = d.Text()
	t.From = d.Text()
}

// MarshalWire appends the wire encoding of t.
func (t TransferResolveResponse) MarshalWire(dst []byte) []byte {
	dst = AppendBool(dst, t.Made)
	dst = t.Transfer.MarshalWire(dst)
	return dst
}

// UnmarshalWire reads t from d.
func (t *TransferResolveResponse) UnmarshalWire(d *Decoder) {
	t.Made = d.Bool()
	t.Transfer.UnmarshalWire(d)
}

// MarshalWire appends the wire encoding of p.
func (p Payee) MarshalWire(dst []byte) []byte {
	dst = AppendInt(dst, p.ID)
	dst = AppendString(dst, p.Nickname)
	dst = AppendString(dst, p.Number)
	dst = AppendTime(dst, p.CreatedAt)
	return dst
}

// UnmarshalWire reads p from d.
func (p *Payee) UnmarshalWire(d *Decoder) {
	p.ID = d.Int()
	p.Nickname = d.Text()
	p.Number = d.Text()
	p.CreatedAt = d.Time()
}

// MarshalWire appends the wire encoding of p.
func (p PayeesResponse) MarshalWire(dst []byte) []byte {
	dst = AppendCount(dst, len(p.Payees))
	for _, e := range p.Payees {
		dst = e.MarshalWire(dst)
	}
	return dst
}

// UnmarshalWire reads p from d.
func (p *PayeesResponse) UnmarshalWire(d *Decoder) {
	p.Payees = decodeList[Payee](d)
}

// MarshalWire appends the wire encoding of p.
func (p PayeeAddRequest) MarshalWire(dst []byte) []byte {
	dst = p.SessionRequest.MarshalWire(dst)
	dst = AppendString(dst, p.Nickname)
	dst = AppendString(dst, p.Number)
	return dst
}

// UnmarshalWire reads p from d.
func (p *PayeeAddRequest) UnmarshalWire(d *Decoder) {
	p.SessionRequest.UnmarshalWire(d)
	p.Nickname = d.Text()
	p.Number = d.Text()
}

// MarshalWire appends the wire encoding of p.
func (p PayeeRenameRequest) MarshalWire(dst []byte) []byte {
	dst = p.SessionRequest.MarshalWire(dst)
	dst = AppendInt(dst, p.ID)
	dst = AppendString(dst, p.Nickname)
	return dst
}

// UnmarshalWire reads p from d.
func (p *PayeeRenameRequest) UnmarshalWire(d *Decoder) {
	p.SessionRequest.UnmarshalWire(d)
	p.ID = d.Int()
	p.Nickname = d.Text()
}

// MarshalWire appends the wire encoding of p.
func (p PayeeDeleteRequest) MarshalWire(dst []byte) []byte {
	dst = p.SessionRequest.MarshalWire(dst)
	dst = AppendInt(dst, p.ID)
	return dst
}

// UnmarshalWire reads p from d.
func (p *PayeeDeleteRequest) UnmarshalWire(d *Decoder) {
	p.SessionRequest.UnmarshalWire(d)
	p.ID = d.Int()
}

// MarshalWire appends the wire encoding of p.
func (p PayeeResponse) MarshalWire(dst []byte) []byte {
	dst = p.Payee.MarshalWire(dst)
	return dst
}

// UnmarshalWire reads p from d.
func (p *PayeeResponse) UnmarshalWire(d *Decoder) {
	p.Payee.UnmarshalWire(d)
}

// MarshalWire appends the wire encoding of c.
func (c Conversation) MarshalWire(dst []byte) []byte {
	dst = AppendInt(dst, c.ID)
	dst = c.With.MarshalWire(dst)
	dst = AppendTime(dst, c.CreatedAt)
	dst = AppendTime(dst, c.LastAt)
	return dst
}

// UnmarshalWire reads c from d.
func (c *Conversation) UnmarshalWire(d *Decoder) {
	c.ID = d.Int()
	c.With.UnmarshalWire(d)
	c.CreatedAt = d.Time()
	c.LastAt = d.Time()
}

// MarshalWire appends the wire encoding of c.
func (c ChatOpenRequest) MarshalWire(dst []byte) []byte {
	dst = c.SessionRequest.MarshalWire(dst)
	dst = AppendString(dst, c.Username)
	return dst
}

// UnmarshalWire reads c from d.
func (c *ChatOpenRequest) UnmarshalWire(d *Decoder) {
	c.SessionRequest.UnmarshalWire(d)
	c.Username = d.Text()
}

// MarshalWire appends the wire encoding of c.
func (c ConversationResponse) MarshalWire(dst []byte) []byte {
	dst = c.Conversation.MarshalWire(dst)
	return dst
}

// UnmarshalWire reads c from d.
func (c *ConversationResponse) UnmarshalWire(d *Decoder) {
	c.Conversation.UnmarshalWire(d)
}

// MarshalWire appends the wire encoding of c.
func (c ConversationsResponse) MarshalWire(dst []byte) []byte {
	dst = AppendCount(dst, len(c.Conversations))
	for _, e := range c.Conversations {
		dst = e.MarshalWire(dst)
	}
	return dst
}

// UnmarshalWire reads c from d.
func (c *ConversationsResponse) UnmarshalWire(d *Decoder) {
	c.Conversations = decodeList[Conversation](d)
}

// MarshalWire appends the wire encoding of c.
func (c ChatSendRequest) MarshalWire(dst []byte) []byte {
	dst = c.SessionRequest.MarshalWire(dst)
	dst = AppendInt(dst, c.ConversationID)
	dst = AppendString(dst, c.Body)
	return dst
}

// UnmarshalWire reads c from d.
func (c *ChatSendRequest) UnmarshalWire(d *Decoder) {
	c.SessionRequest.UnmarshalWire(d)
	c.ConversationID = d.Int()
	c.Body = d.Text()
}

// MarshalWire appends the wire encoding of m.
func (m Message) MarshalWire(dst []byte) []byte {
	dst = AppendInt(dst, m.ID)
	dst = AppendInt(dst, m.ConversationID)
	dst = m.From.MarshalWire(dst)
	dst = AppendString(dst, m.Body)
	dst = AppendTime(dst, m.CreatedAt)
	return dst
}

// UnmarshalWire reads m from d.
func (m *Message) UnmarshalWire(d *Decoder) {
	m.ID = d.Int()
	m.ConversationID = d.Int()
	m.From.UnmarshalWire(d)
	m.Body = d.Text()
	m.CreatedAt = d.Time()
}

// MarshalWire appends the wire encoding of m.
func (m MessageResponse) MarshalWire(dst []byte) []byte {
	dst = m.Message.MarshalWire(dst)
	return dst
}

// UnmarshalWire reads m from d.
func (m *MessageResponse) UnmarshalWire(d *Decoder) {
	m.Message.UnmarshalWire(d)
}

// MarshalWire appends the wire encoding of c.
func (c ChatHistoryRequest) MarshalWire(dst []byte) []byte {
	dst = c.SessionRequest.MarshalWire(dst)
	dst = AppendInt(dst, c.ConversationID)
	dst = AppendString(dst, c.Cursor)
	dst = AppendInt(dst, int64(c.Limit))
	return dst
}

// UnmarshalWire reads c from d.
func (c *ChatHistoryRequest) UnmarshalWire(d *Decoder) {
	c.SessionRequest.UnmarshalWire(d)
	c.ConversationID = d.Int()
	c.Cursor = d.Text()
	c.Limit = d.IntN()
}

// MarshalWire appends the wire encoding of c.
func (c ChatHistoryResponse) MarshalWire(dst []byte) []byte {
	dst = c.Conversation.MarshalWire(dst)
	dst = AppendCount(dst, len(c.Messages))
	for _, e := range c.Messages {
		dst = e.MarshalWire(dst)
	}
	dst = AppendString(dst, c.NextCursor)
	return dst
}

// UnmarshalWire reads c from d.
func (c *ChatHistoryResponse) UnmarshalWire(d *Decoder) {
	c.Conversation.UnmarshalWire(d)
	c.Messages = decodeList[Message](d)
	c.NextCursor = d.Text()
}

// MarshalWire appends the wire encoding of e.
func (e Event) MarshalWire(dst []byte) []byte {
	dst = AppendString(dst, e.Kind)
	dst = AppendBool(dst, e.Message != nil)
	if e.Message != nil {
		dst = e.Message.MarshalWire(dst)
	}
	dst = AppendBool(dst, e.Account != nil)
	if e.Account != nil {
		dst = e.Account.MarshalWire(dst)
	}
	return dst
}

// UnmarshalWire reads e from d.
func (e *Event) UnmarshalWire(d *Decoder) {
	e.Kind = d.Text()
	e.Message = nil
	if d.Bool() {
		e.Message = new(Message)
		e.Message.UnmarshalWire(d)
	}
	e.Account = nil
	if d.Bool() {
		e.Account = new(Account)
		e.Account.UnmarshalWire(d)
	}
}
