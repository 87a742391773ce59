/**
 * Delivery statuses in one place: what each provider's receipt events mean
 * for a message's delivery_status (which only moves forward: see
 * hermes_delivery_rank in schema.sql), and how receipts are labelled in
 * hermes_delivery_receipts_total.
 */
export const deliveryStatuses = ['queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'undelivered', 'bounce', 'dropped', 'canceled'] as const
export type DeliveryStatus = typeof deliveryStatuses[number]

/** Twilio MessageStatus → delivery status; receiving, received and partially_delivered report none. */
export const twilioStatus: Readonly<Record<string, DeliveryStatus>> = {
  accepted: 'queued',
  scheduled: 'queued',
  queued: 'queued',
  sending: 'sending',
  sent: 'sent',
  delivered: 'delivered',
  read: 'read',
  undelivered: 'undelivered',
  failed: 'failed',
  canceled: 'canceled'
}

/** SendGrid Event Webhook event → delivery status (processed: accepted for delivery; deferred: still trying). */
export const sendgridStatus: Readonly<Record<string, DeliveryStatus>> = {
  processed: 'queued',
  deferred: 'sending',
  delivered: 'delivered',
  bounce: 'bounce',
  dropped: 'dropped'
}

/** Events about the reader, not the delivery: stored, delivery_status untouched. */
export const engagementEvents: ReadonlySet<string> = new Set(['open', 'click', 'spamreport', 'unsubscribe', 'group_unsubscribe', 'group_resubscribe'])

export const receiptLabels = [...deliveryStatuses, 'engagement', 'other'] as const

/** The status label of a stored receipt event. */
export function receiptLabel (status: string | null, event: string): typeof receiptLabels[number] {
  if (status !== null && (deliveryStatuses as readonly string[]).includes(status)) return status as DeliveryStatus
  return engagementEvents.has(event) ? 'engagement' : 'other'
}
