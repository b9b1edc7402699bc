<?php
namespace Bitrix\Main\Type;

/**
 * [R main/lib/type/date.php]: __construct($date = null, $format = null), format($phpFormat),
 * getTimestamp(), toString()/__toString() in the culture format (DD.MM.YYYY = d.m.Y);
 * DateTime is a subclass of Date. What DB\Result gives for DATE / DATETIME columns.
 */
class Date
{
    protected \DateTime $value;

    public function __construct($date = null, $format = null)
    {
        $parsed = $date === null ? new \DateTime() : \DateTime::createFromFormat('!' . ($format ?? 'd.m.Y'), (string)$date);
        if ($parsed === false) {
            throw new \Bitrix\Main\ObjectException("Incorrect date: $date");
        }
        $this->value = $parsed;
    }

    public function format($format) { return $this->value->format($format); }
    public function getTimestamp() { return $this->value->getTimestamp(); }
    public function toString() { return $this->value->format('d.m.Y'); }
    public function __toString() { return $this->toString(); }
}

class DateTime extends Date
{
    public function toString() { return $this->value->format('d.m.Y H:i:s'); }
}
